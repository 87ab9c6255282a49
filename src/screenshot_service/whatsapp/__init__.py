"""WhatsApp: the Graph API client, the publisher (render, fit, upload, forget), images and temp files."""
