"""The four loss terms of the audio style transfer."""
