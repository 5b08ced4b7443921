"""The answer stage: which sentence answers (the ranker), whether that pick is right (the
answerability model), whether the scope answers at all (the absence model), and the one decision
that turns them into `answered`, `unsure` or `not_found` (outcome.py: its docstring has the table).

- features.py: what the models see, per candidate sentence and per question;
- extract.py: candidates from the retrieved passages, and each outcome's text;
- models.py: the fitted models, read from models/answer.json and applied with numpy;
- outcome.py: the decision.
"""
