from .base import BaseSynthesizer, PooledSynthesizer
from .generator import (ConditionalImageEditor, DCGANGenerator, PriorResidualGenerator,
                        sample_latent)
from .data_pool import SyntheticDataPool
from .generator_synthesizer import GeneratorSynthesizer
from .generative_inversion_synthesizer import GenerativeInversionSynthesizer
from .inversion_synthesizer import InversionSynthesizer
from .image_prior_synthesizer import ImagePriorSynthesizer, draw_differing_pairs
from .contrastive_refiner import InstanceContrastRefiner
from .diffusion_synthesizer import DiffusionSynthesizer

__all__ = [
    'BaseSynthesizer', 'PooledSynthesizer', 'GenerativeInversionSynthesizer', 'DCGANGenerator',
    'ConditionalImageEditor',
    'PriorResidualGenerator', 'sample_latent',
    'GeneratorSynthesizer', 'InversionSynthesizer', 'SyntheticDataPool',
    'ImagePriorSynthesizer', 'InstanceContrastRefiner', 'DiffusionSynthesizer',
    'draw_differing_pairs'
]
