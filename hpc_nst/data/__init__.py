"""Test and demo audio made locally: SoundFont renders of General MIDI notes and tuning forks."""
