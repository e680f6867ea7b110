"""The settings: ``Settings.from_env()`` once at start-up, one section per capability."""

from hub.settings.integrations import BraintreeConfig, LiveKitInstanceConfig, StripeConfig
from hub.settings.root import Settings, configuration_table
from hub.settings.variables import SettingsError

__all__ = [
    "BraintreeConfig",
    "LiveKitInstanceConfig",
    "Settings",
    "SettingsError",
    "StripeConfig",
    "configuration_table",
]
