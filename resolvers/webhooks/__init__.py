"""Webhooks: endpoints managed through the API (``endpoints``), where requests may go
(``urls``), one signed request (``sending``), and the background sender (``sender``)."""
