"""The YAML config: a module per section; every error in a file reported at once, with its path."""

from exporter.config.document import Config, load_config, parse_config
from exporter.config.yamlfile import ConfigError

__all__ = ["Config", "ConfigError", "load_config", "parse_config"]
