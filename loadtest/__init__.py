"""Load tests for the Artist Space hub, driven over the wire like phones.

``python -m loadtest run|step|idle|compare|soak``; see loadtest/README.md. Nothing here imports
the hub's own packages: it registers over REST and talks Socket.IO like the app.
"""
