"""Dataset generation: seeded problems (reference distribution and presets), names, export, Hub push."""
