"""Gemini's own API (generateContent), served by the Gemini-native proxy endpoint."""
