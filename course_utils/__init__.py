"""Helpers for the transfer-learning course. Read them in the order data flows:

settings  fast/full mode, dataset location, device, seeds, threads
download  the ants-vs-bees data from a mirror or the internet, verified
data      ImageFolder scanning, decode-once image cache, augmentation, loaders
lite      EfficientNet-Lite, the ImageNet model that loads offline
zoo       catalogue, pretrained loading with offline fallback, heads, freezing
train     the one training loop, evaluation, prediction
plots     learning curves, image grids, confusion matrices
"""
__version__ = "0.1.0"
