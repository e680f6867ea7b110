"""The typed results as a terminal table (``text``, ``soak_text``), report.json and chart.png
(``files``, ``charts``)."""
