from .base import BaseSynthesizer
from .generator import DCGANGenerator
from .generator_synthesizer import GeneratorSynthesizer

__all__ = ['BaseSynthesizer', 'DCGANGenerator', 'GeneratorSynthesizer']
