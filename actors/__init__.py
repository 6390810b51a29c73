"""The trading system: one actor per file, pure trading math beside it."""
