"""The Pareto leaderboard: rank every (configuration x variant) per target and write README.md, CSV and plots."""
