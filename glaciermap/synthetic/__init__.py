"""The synthetic demo world and its rendering into real product formats."""
