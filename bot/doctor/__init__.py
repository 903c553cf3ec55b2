"""`storybot doctor`'s checks: the config, secrets, database, tools, generators and platforms.

``report.py`` runs them and renders the report, ``checks.py`` holds the rows and the checks of
everything that is not a social platform, ``platforms.py`` the checks of each platform.
"""
