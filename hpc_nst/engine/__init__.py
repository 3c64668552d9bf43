"""The style-transfer engine: batched optimisation of spectrograms and resynthesis."""
