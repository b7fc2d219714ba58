"""Helpers for the transfer-learning course. Read them in the order data flows:

settings    fast/full mode (sizes only), dataset location, device, seeds, threads; read when called
download    the ants-vs-bees data from a mirror or the internet, verified
data        ImageFolder scanning, decode-once image cache, augmentation, loaders
lite        EfficientNet-Lite, the ImageNet model that loads offline
zoo         catalogue, pretrained loading with offline fallback, heads, freezing, counting
chapter     one set-up call per chapter: device, classes, pretrained model, preset, loaders
tutorial    the PyTorch tutorial's plain loop, kept once as the reference
train       the one training loop in layers: step, train_one_epoch, evaluate, fit; predict, accuracy
distributed fit under torchrun (DDP): ranks, each its device, sharded loaders, reduced scores; no-ops in one process
features    frozen-base features computed once, loaders over them
finetune    fine-tuning strategies: discriminative rates, progressive unfreezing, comparison rows
checkpoint  saving and loading trained models safely
optimizers  the course's SGD; toy loss surfaces, momentum by hand, the learning-rate range test
stats       validation error: intervals, paired bootstrap, diagnosing learning curves
shift       domain shift: corruptions, AdaBN, trunk and top, DANN
online      online learning: drifting streams, replay, EWC, a gated deployment loop
plots       learning curves, image grids, confusion matrices
exercises   the checks students run on their answers
"""
__version__ = "0.1.0"
