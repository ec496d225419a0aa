from .base import BaseSynthesizer, PooledSynthesizer
from .generator import DCGANGenerator
from .data_pool import SyntheticDataPool
from .generator_synthesizer import GeneratorSynthesizer
from .generative_inversion_synthesizer import GenerativeInversionSynthesizer
from .inversion_synthesizer import InversionSynthesizer

__all__ = [
    'BaseSynthesizer', 'PooledSynthesizer', 'GenerativeInversionSynthesizer', 'DCGANGenerator',
    'GeneratorSynthesizer', 'InversionSynthesizer', 'SyntheticDataPool'
]
