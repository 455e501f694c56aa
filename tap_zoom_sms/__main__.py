"""Allow ``python -m tap_zoom_sms``."""

from tap_zoom_sms.tap import main

main()
