"""Class names and class subsets of the standard benchmark sets.

The label of a sample is its index in these lists, which follow the order of the
official label files (CIFAR, STL-10) or the sorted WordNet ids (the ImageNet subsets).
"""

from __future__ import annotations

__all__ = [
    "CIFAR10_CLASSES",
    "CIFAR100_CLASSES",
    "CIFAR100_SUPERCLASSES",
    "IMAGENET10_CLASSES",
    "IMAGENET_DOGS_CLASSES",
    "STL10_CLASSES",
]

#: CIFAR-10 labels 0..9 (``batches.meta`` / ``batches.meta.txt``).
CIFAR10_CLASSES: tuple[str, ...] = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)

#: CIFAR-100 fine labels 0..99 (``meta`` / ``fine_label_names.txt``), alphabetical.
CIFAR100_CLASSES: tuple[str, ...] = (
    "apple",
    "aquarium_fish",
    "baby",
    "bear",
    "beaver",
    "bed",
    "bee",
    "beetle",
    "bicycle",
    "bottle",
    "bowl",
    "boy",
    "bridge",
    "bus",
    "butterfly",
    "camel",
    "can",
    "castle",
    "caterpillar",
    "cattle",
    "chair",
    "chimpanzee",
    "clock",
    "cloud",
    "cockroach",
    "couch",
    "crab",
    "crocodile",
    "cup",
    "dinosaur",
    "dolphin",
    "elephant",
    "flatfish",
    "forest",
    "fox",
    "girl",
    "hamster",
    "house",
    "kangaroo",
    "keyboard",
    "lamp",
    "lawn_mower",
    "leopard",
    "lion",
    "lizard",
    "lobster",
    "man",
    "maple_tree",
    "motorcycle",
    "mountain",
    "mouse",
    "mushroom",
    "oak_tree",
    "orange",
    "orchid",
    "otter",
    "palm_tree",
    "pear",
    "pickup_truck",
    "pine_tree",
    "plain",
    "plate",
    "poppy",
    "porcupine",
    "possum",
    "rabbit",
    "raccoon",
    "ray",
    "road",
    "rocket",
    "rose",
    "sea",
    "seal",
    "shark",
    "shrew",
    "skunk",
    "skyscraper",
    "snail",
    "snake",
    "spider",
    "squirrel",
    "streetcar",
    "sunflower",
    "sweet_pepper",
    "table",
    "tank",
    "telephone",
    "television",
    "tiger",
    "tractor",
    "train",
    "trout",
    "tulip",
    "turtle",
    "wardrobe",
    "whale",
    "willow_tree",
    "wolf",
    "woman",
    "worm",
)

#: CIFAR-100 coarse labels 0..19 (``meta`` / ``coarse_label_names.txt``). Clustering
#: papers report "CIFAR-100" on these 20 superclasses: the coarse label of each image
#: is its class in ``cifar100-20``.
CIFAR100_SUPERCLASSES: tuple[str, ...] = (
    "aquatic_mammals",
    "fish",
    "flowers",
    "food_containers",
    "fruit_and_vegetables",
    "household_electrical_devices",
    "household_furniture",
    "insects",
    "large_carnivores",
    "large_man-made_outdoor_things",
    "large_natural_outdoor_scenes",
    "large_omnivores_and_herbivores",
    "medium_mammals",
    "non-insect_invertebrates",
    "people",
    "reptiles",
    "small_mammals",
    "trees",
    "vehicles_1",
    "vehicles_2",
)

#: STL-10 labels 1..10 of ``train_y.bin``/``test_y.bin`` minus one (``class_names.txt``).
STL10_CLASSES: tuple[str, ...] = (
    "airplane",
    "bird",
    "car",
    "cat",
    "deer",
    "dog",
    "horse",
    "monkey",
    "ship",
    "truck",
)

# ImageNet-10 and ImageNet-Dogs are subsets of the ILSVRC-2012 training set defined by
# Chang et al., "Deep Adaptive Image Clustering" (DAC, ICCV 2017), and reused with the
# same synsets by later deep-clustering work such as Li et al., "Contrastive
# Clustering" (CC, AAAI 2021), which use all 1,300 training images of each class.
# These are the WordNet ids of their classes, in sorted order.

#: ImageNet-10: (WordNet id, class name) of its 10 classes; 13,000 training images.
IMAGENET10_CLASSES: tuple[tuple[str, str], ...] = (
    ("n02056570", "king penguin"),
    ("n02085936", "Maltese dog"),
    ("n02128757", "snow leopard"),
    ("n02690373", "airliner"),
    ("n02692877", "airship"),
    ("n03095699", "container ship"),
    ("n04254680", "soccer ball"),
    ("n04285008", "sports car"),
    ("n04467665", "trailer truck"),
    ("n07747607", "orange"),
)

#: ImageNet-Dogs: (WordNet id, breed) of its 15 dog classes; 19,500 training images.
IMAGENET_DOGS_CLASSES: tuple[tuple[str, str], ...] = (
    ("n02085936", "Maltese dog"),
    ("n02086646", "Blenheim spaniel"),
    ("n02088238", "basset"),
    ("n02091467", "Norwegian elkhound"),
    ("n02097130", "giant schnauzer"),
    ("n02099601", "golden retriever"),
    ("n02101388", "Brittany spaniel"),
    ("n02101556", "clumber"),
    ("n02102177", "Welsh springer spaniel"),
    ("n02105056", "groenendael"),
    ("n02105412", "kelpie"),
    ("n02105855", "Shetland sheepdog"),
    ("n02107142", "Doberman"),
    ("n02110958", "pug"),
    ("n02112137", "chow"),
)
