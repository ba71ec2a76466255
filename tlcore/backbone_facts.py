"""The backbone's facts, written once: VGG16's name, blocks, layer chain, layer count and block boundaries.

Everything else reads them from here: the config's freeze point range, the
registry (`tlcore.backbones`), the TensorFlow-free arithmetic of the layer
table and the estimate (`tlcore.architecture`), the freeze arithmetic of the
Keras model (`tlcore.tf.model`), the advisor, the sweep's default points and the
pages. Standard library only, and no tlcore import: `tlcore.config`, which
almost every module imports, reads this module, so it must not read config.
"""

from __future__ import annotations

from dataclasses import dataclass

VGG16 = "vgg16"  # the name of VGG16 in tlcore.backbones.BACKBONES, configs and run records
DEFAULT_BACKBONE = VGG16  # the only backbone so far

# The one table of VGG16 facts (Simonyan & Zisserman's configuration D, as in
# keras.applications.VGG16 without its top): (filters, 3x3 'same' convolutions)
# of each block; every block ends in a 2x2 max pooling of stride 2 ('valid').
VGG16_BLOCKS: tuple[tuple[int, int], ...] = ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))
KERNEL_SIZE = 3
IMAGE_CHANNELS = 3  # RGB
VGG16_DEFAULT_IMAGE_SIZE = 224  # what ImageNet training used
VGG16_MIN_IMAGE_SIZE = 32  # keras.applications.VGG16 refuses smaller inputs: five poolings need 2**5 px


@dataclass(frozen=True)
class ConvLayer:
    """One layer of VGG16's chain: a 3x3 convolution, or (is_conv False) a 2x2 max pooling."""

    name: str
    block: str
    in_channels: int
    out_channels: int
    is_conv: bool

    @property
    def type(self) -> str:
        """The Keras class name."""
        return "Conv2D" if self.is_conv else "MaxPooling2D"

    @property
    def weight_shapes(self) -> tuple[tuple[int, ...], ...]:
        """(kernel, bias) shapes of a convolution, () for a pooling."""
        if not self.is_conv:
            return ()
        return (KERNEL_SIZE, KERNEL_SIZE, self.in_channels, self.out_channels), (self.out_channels,)

    @property
    def params(self) -> int:
        return sum(_product(shape) for shape in self.weight_shapes)

    def output_side(self, input_side: int) -> int:
        """Side of the square output map: 'same' convolutions keep it, a 'valid' 2x2/2 pooling halves it (floor)."""
        return input_side if self.is_conv else input_side // 2

    def flops(self, input_side: int) -> float:
        """Forward FLOPs per image (2 per multiply-add); a pooling's are negligible."""
        if not self.is_conv:
            return 0.0
        return 2.0 * input_side * input_side * KERNEL_SIZE * KERNEL_SIZE * self.in_channels * self.out_channels


def _product(shape: tuple[int, ...]) -> int:
    result = 1
    for dim in shape:
        result *= dim
    return result


def _vgg16_chain() -> tuple[ConvLayer, ...]:
    layers, channels = [], IMAGE_CHANNELS
    for b, (filters, convs) in enumerate(VGG16_BLOCKS, start=1):
        for c in range(1, convs + 1):
            layers.append(ConvLayer(f"block{b}_conv{c}", f"block{b}", channels, filters, True))
            channels = filters
        layers.append(ConvLayer(f"block{b}_pool", f"block{b}", channels, channels, False))
    return tuple(layers)


def block_boundaries(layer_blocks: tuple[str, ...]) -> tuple[int, ...]:
    """Freeze points that fall between blocks, 0 and the layer count included, from each layer's block."""
    ends = [i + 1 for i in range(len(layer_blocks) - 1) if layer_blocks[i] != layer_blocks[i + 1]]
    return (0, *ends, len(layer_blocks))


VGG16_CHAIN: tuple[ConvLayer, ...] = _vgg16_chain()  # the layers after the input that a freeze point counts over
VGG16_LAYERS = len(VGG16_CHAIN)  # 18: a freeze point is 0..VGG16_LAYERS
VGG16_CONVS: tuple[ConvLayer, ...] = tuple(layer for layer in VGG16_CHAIN if layer.is_conv)  # 13, with weights
VGG16_CHANNELS = VGG16_CHAIN[-1].out_channels  # of the last feature map (512)
VGG16_LAST_CONV = VGG16_CONVS[-1].name  # block5_conv3: where Grad-CAM looks
VGG16_LAYER_BLOCKS: tuple[str, ...] = tuple(layer.block for layer in VGG16_CHAIN)
# (0, 3, 6, 10, 14, 18): everything trains, ..., block 5 + head (14), only the head (18)
VGG16_BLOCK_BOUNDARIES: tuple[int, ...] = block_boundaries(VGG16_LAYER_BLOCKS)
# The freeze points people name: every layer frozen (only the head trains), blocks 1-4 frozen (block 5
# trains), blocks 1-3 frozen (blocks 4-5 train), nothing frozen (everything trains).
*_, BLOCKS4_5, BLOCK5, HEAD_ONLY = VGG16_BLOCK_BOUNDARIES
EVERYTHING = VGG16_BLOCK_BOUNDARIES[0]
