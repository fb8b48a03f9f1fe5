"""Chat histories as the chat routes use them: turns on a saved chat (locking, appending without duplicates,
the model's context) over the ``ChatStore`` port of ``services.stores``."""
