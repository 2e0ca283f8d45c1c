"""The model of a dialogue: trees of turns, the messages an agent sees, questions with known
answers, and the judge that reads answers out of turns."""
