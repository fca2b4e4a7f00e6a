"""Online therapy tools: validated questionnaires and measurement-based care (issue 6)."""
