"""The registered data sets, one module per family.

Each module holds everything known about its family: the registration of its sets
(names, descriptions, official files and layouts), the reader of its distribution
format, and its origin (the remote files with their published checksums, or how to
obtain the set where there is no public address). Importing this package registers
them all, in the order ``contraclust datasets`` lists them.
"""

from __future__ import annotations

# Registration order is listing order: the built-in and MNIST-like sets first.
# isort: off
from contraclust.data.sets import digits, mnist, fashion_mnist, usps  # noqa: F401
from contraclust.data.sets import cifar, stl10, tiny_imagenet, imagenet  # noqa: F401
# isort: on
