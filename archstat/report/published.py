"""Published figures that the reproduced reports compare against, each with its source.

One home for every number archstat did not compute. Tests check these against the
reference folder (``shared/reference``) when it is present, so the two cannot drift.
"""
from __future__ import annotations

VGG_SOURCE = ('K. Simonyan, A. Zisserman, "Very Deep Convolutional Networks for Large-Scale Image '
              'Recognition", arXiv:1409.1556v6 (ICLR 2015), Tables 1 and 2')

#: Table 2: number of parameters (millions) per configuration, and the zoo model reproducing it
VGG_TABLE2 = (
    # config, zoo name, Table 1 weight layers, Table 2 params (M)
    ("A", "vgg11", 11, 133),
    ("A-LRN", "vgg11_lrn", 11, 133),
    ("B", "vgg13", 13, 133),
    ("C", "vgg16_c", 16, 134),
    ("D", "vgg16", 16, 138),
    ("E", "vgg19", 19, 144),
)

CS231N_SOURCE = ("CS231n (Li, Johnson, Yeung) 2017 Lecture 9 slide \"VGGNet\" and the course notes "
                 "cs231n.github.io convolutional-networks.md, section \"VGGNet in detail\"")

#: The slide's rows as printed: label, output (H x W x C), memory, params (weights, no biases)
CS231N_VGG16 = (
    ("INPUT", "224x224x3", "224*224*3=150K", "0"),
    ("CONV3-64", "224x224x64", "224*224*64=3.2M", "(3*3*3)*64 = 1,728"),
    ("CONV3-64", "224x224x64", "224*224*64=3.2M", "(3*3*64)*64 = 36,864"),
    ("POOL2", "112x112x64", "112*112*64=800K", "0"),
    ("CONV3-128", "112x112x128", "112*112*128=1.6M", "(3*3*64)*128 = 73,728"),
    ("CONV3-128", "112x112x128", "112*112*128=1.6M", "(3*3*128)*128 = 147,456"),
    ("POOL2", "56x56x128", "56*56*128=400K", "0"),
    ("CONV3-256", "56x56x256", "56*56*256=800K", "(3*3*128)*256 = 294,912"),
    ("CONV3-256", "56x56x256", "56*56*256=800K", "(3*3*256)*256 = 589,824"),
    ("CONV3-256", "56x56x256", "56*56*256=800K", "(3*3*256)*256 = 589,824"),
    ("POOL2", "28x28x256", "28*28*256=200K", "0"),
    ("CONV3-512", "28x28x512", "28*28*512=400K", "(3*3*256)*512 = 1,179,648"),
    ("CONV3-512", "28x28x512", "28*28*512=400K", "(3*3*512)*512 = 2,359,296"),
    ("CONV3-512", "28x28x512", "28*28*512=400K", "(3*3*512)*512 = 2,359,296"),
    ("POOL2", "14x14x512", "14*14*512=100K", "0"),
    ("CONV3-512", "14x14x512", "14*14*512=100K", "(3*3*512)*512 = 2,359,296"),
    ("CONV3-512", "14x14x512", "14*14*512=100K", "(3*3*512)*512 = 2,359,296"),
    ("CONV3-512", "14x14x512", "14*14*512=100K", "(3*3*512)*512 = 2,359,296"),
    ("POOL2", "7x7x512", "7*7*512=25K", "0"),
    ("FC", "1x1x4096", "4096", "7*7*512*4096 = 102,760,448"),
    ("FC", "1x1x4096", "4096", "4096*4096 = 16,777,216"),
    ("FC", "1x1x1000", "1000", "4096*1000 = 4,096,000"),
)
CS231N_TOTAL_MEMORY = "TOTAL memory: 24M * 4 bytes ~= 96MB / image (only forward! ~*2 for bwd)"
CS231N_TOTAL_MEMORY_ELEMENTS = 24_000_000
CS231N_TOTAL_PARAMS = "TOTAL params: 138M parameters"
CS231N_TOTAL_PARAMS_VALUE = 138_000_000

ALEXNET_SOURCE = ("CS231n (Li, Johnson, Yeung) 2017 Lecture 9 slide \"Full (simplified) AlexNet architecture\"; "
                  "Krizhevsky, Sutskever, Hinton, NIPS 2012 for the two-GPU layout")

#: The lecture's AlexNet layer list as printed (output volume, description)
ALEXNET_LECTURE = (
    ("227x227x3", "INPUT"),
    ("55x55x96", "CONV1: 96 11x11 filters at stride 4, pad 0"),
    ("27x27x96", "MAX POOL1: 3x3 filters at stride 2"),
    ("27x27x96", "NORM1: Normalization layer"),
    ("27x27x256", "CONV2: 256 5x5 filters at stride 1, pad 2"),
    ("13x13x256", "MAX POOL2: 3x3 filters at stride 2"),
    ("13x13x256", "NORM2: Normalization layer"),
    ("13x13x384", "CONV3: 384 3x3 filters at stride 1, pad 1"),
    ("13x13x384", "CONV4: 384 3x3 filters at stride 1, pad 1"),
    ("13x13x256", "CONV5: 256 3x3 filters at stride 1, pad 1"),
    ("6x6x256", "MAX POOL3: 3x3 filters at stride 2"),
    ("4096", "FC6: 4096 neurons"),
    ("4096", "FC7: 4096 neurons"),
    ("1000", "FC8: 1000 neurons (class scores)"),
)
#: Krizhevsky et al. 2012, Section 1: "60 million parameters"
ALEXNET_PAPER_PARAMS = 60_000_000
