from .base import BaseSynthesizer
from .generator import DCGANGenerator
from .data_pool import SyntheticDataPool
from .generator_synthesizer import GeneratorSynthesizer
from .inversion_synthesizer import InversionSynthesizer

__all__ = [
    'BaseSynthesizer', 'DCGANGenerator', 'GeneratorSynthesizer', 'InversionSynthesizer',
    'SyntheticDataPool'
]
