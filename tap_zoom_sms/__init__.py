"""tap-zoom-sms: a Singer tap for Zoom Phone SMS and Zoom Contact Center SMS."""
