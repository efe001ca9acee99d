"""Development tools: test doubles that speak the vendors' protocols on loopback.

``devtools.netbox`` (a NetBox 4.x REST API built from real recorded responses, also the demo NetBox of
``make run``), ``devtools.confluence`` (Confluence's REST API, as strict as the real one) and ``devtools.llm`` (an
OpenAI-compatible chat-completions provider). Tests, benchmarks and ``scripts/`` import them; no production module
does (the import-linter contracts in ``make test`` check it).
"""
