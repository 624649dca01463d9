"""Class names people can read, their WordNet categories, and search over all five labels."""
import json
import os

import pytest
from django.core.exceptions import ImproperlyConfigured

from classifier import labels, pipeline
from classifier.models import Batch, Image, Prediction
from tests import corpus

CHELSEA_VARIANTS = ["cmyk.jpg", "palette_transparent.png", "rgba.png", "actually_jpeg.png", "rotated_exif.jpg"]


def names():
    return [label for _, label in labels.imagenet_labels()]


def test_every_class_name_is_unique_and_reads_as_a_name():
    assert len({name.lower() for name in names()}) == labels.CLASS_COUNT
    assert names()[282] == "tiger cat" and "having" not in " ".join(names())
    assert (names()[657], names()[744]) == ("missile", "projectile")
    assert (names()[836], names()[837]) == ("sunglass (lens)", "sunglasses")


def test_the_hierarchy_is_read_from_wordnet_nearest_category_first():
    nouns = labels.read_wordnet_nouns(labels.wordnet_nouns_path())
    tabby = labels.class_hierarchy(nouns)[281]
    assert tabby["wnid"] == "n02123045" and tabby["names"] == ["tabby", "tabby cat"]
    parents = [lemmas[0] for lemmas in tabby["parents"]]
    assert parents[:2] == ["domestic cat", "cat"]
    assert parents.index("feline") < parents.index("carnivore") < parents.index("mammal") and "animal" in parents
    assert not set(parents) & labels.TOO_ABSTRACT  # no "entity", "whole", "organism"


def test_a_class_whose_wordnet_sense_is_wrong_takes_its_parents_from_the_right_one():
    tea_cup = labels.categories(968)  # WordNet's "cup" n07930864 is a punch; the photos are cups
    assert tea_cup["parents"][:2] == ["cup", "crockery"] and "punch" not in tea_cup["parents"]


def test_search_text_matches_whole_words_of_names_and_categories():
    tabby, lion, catamaran = (labels.categories(index)["search_text"] for index in (281, 291, 484))
    assert labels.search_phrase("cat") in tabby and labels.search_phrase("cat") in lion
    assert labels.search_phrase("Domestic  CAT!") in tabby
    assert labels.search_phrase("cat") not in catamaran
    assert labels.search_phrase("tabb") not in tabby  # whole words only
    assert labels.search_phrase("cat domestic") not in tabby  # a phrase never spans two names
    assert labels.search_phrase("  ") == ""


def test_build_model_builds_the_hierarchy_once_and_on_request(tmp_path):
    path = labels.build_hierarchy(tmp_path)
    document = json.loads(path.read_text())
    assert len(document["classes"]) == labels.CLASS_COUNT and document["classes"][0]["wnid"] == "n01440764"
    assert labels.build_hierarchy(tmp_path) is None  # up to date
    assert labels.build_hierarchy(tmp_path, force=True) == path


def test_a_hierarchy_for_other_classes_is_refused(tmp_path, settings):
    settings.MODEL_DIR = tmp_path
    labels.build_hierarchy(tmp_path)
    path = labels.hierarchy_path(tmp_path)
    document = json.loads(path.read_text())
    document["classes"].reverse()
    path.write_text(json.dumps(document))
    os.utime(path)
    labels.hierarchy.cache_clear()
    try:
        with pytest.raises(ImproperlyConfigured, match="build_model --force"):
            labels.hierarchy()
    finally:
        labels.hierarchy.cache_clear()


def classify_corpus(classifier, user):
    """The sample photos and the odd-but-valid files, classified by the real model and recorded as
    a worker records them (claim, then finish); returns {name: image}."""
    files = {f"{name}.jpg": corpus.photo_jpeg(name) for name in corpus.PHOTOS}
    files.update(corpus.odd_but_valid_files())
    results = [result for batch in pipeline.classify(list(files.values()), lambda data: data, classifier=classifier)
               for result in batch]
    batch = Batch.objects.create(owner=user)
    images = {name: Image.objects.create(owner=user, batch=batch, file=f"images/{n}/original", original_name=name,
                                         size=1, sha256="0" * 64) for n, name in enumerate(files)}
    claimed = {image.pk: image for image in Image.objects.claim([image.pk for image in images.values()], "test:1")}
    outcomes = [(claimed[image.pk], result.labels, "", result.code, result.error)
                for image, result in zip(images.values(), results)]
    assert Image.objects.finish(outcomes, classifier.name) == len(files)
    return images


@pytest.mark.django_db
def test_cat_finds_every_cat_photo_by_any_of_its_five_labels(litert_classifier, user):
    images = classify_corpus(litert_classifier, user)
    cats = {"chelsea.jpg", *CHELSEA_VARIANTS}

    found = list(Image.objects.search_label("cat"))

    assert cats <= {image.original_name for image in found}
    assert not {"coffee.jpg", "rocket.jpg", "astronaut.jpg"} & {image.original_name for image in found}
    # "tabby" is a top label's own name; the worker stored every prediction's categories.
    assert "chelsea.jpg" in {image.original_name for image in Image.objects.search_label("tabby")}
    top = Prediction.objects.get(image=images["chelsea.jpg"], rank=1)
    assert "cat" in top.parents and top.label == labels.imagenet_labels()[top.class_index][1]
    assert found[0].match_score >= found[-1].match_score  # best match first
