"""The presentation layer: the analysis' results (``advisor.recommender.AdvisorReport`` and
what it holds) in words, tables, JSON and HTML. Nothing here computes a figure; nothing in the
analysis says one in words.

``numbers`` formats figures, ``words`` names bases, scores and modes, ``notes`` says the
analysis' notes, ``quality``, ``search`` and ``report`` say their results, ``html`` renders the
HTML report through the templates under ``templates/``.
"""
