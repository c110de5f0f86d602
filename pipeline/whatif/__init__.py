"""What-if replay: the recorded history through the current and a proposed journey, offline,
and what would change (``lifecycle whatif``)."""
