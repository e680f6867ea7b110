"""Push notifications to devices that are not connected: APNs (alerts, VoIP) and FCM."""
