"""The shop's web pages: server-rendered Jinja2 pages over the same stores and domain
functions the JSON API uses (no HTTP calls to itself). Imports nothing from `app/`;
the app includes `web.router.router`."""
