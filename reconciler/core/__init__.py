"""Pure decisions: derive desired facts, diff against observed ones, plan, render."""
