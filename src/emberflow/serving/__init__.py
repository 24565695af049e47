"""Standard APIs over the same units: HTTP gateway (OpenAI, KServe v2 REST/gRPC, metrics) and
AIGES-style wrapper projects (issue 5)."""
