"""tap-voluum: a Singer tap for the Voluum ad-tracking API."""
