"""The shared plumbing every package stands on, and nothing else.

- `settings`: the one settings source, checked once, failing fast;
- `db`: the database singletons, the declarative base and the column types;
- `errors`: what a user (or another system) is told when a request is wrong;
- `uow`: the unit of work: one commit per request, job or command, side effects after it;
- `api`: the JSON API layer (flask-smorest): schemas, the OpenAPI document, one error format;
- `jobs`: scheduled jobs declared next to their function and locked in the database;
- `tasks`: a durable queue of local work the worker runs after the request that asked for it;
- `signals`: the domain signals services send and other packages subscribe to;
- `time`: the corp's time zone and how times are shown.

Nothing here imports a feature package.
"""
