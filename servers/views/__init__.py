"""The customer's server pages: `server` (dashboard, server page, power actions,
credentials) and `deployments` (deploy form, history, live log)."""
