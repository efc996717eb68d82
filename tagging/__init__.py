"""Corp tag catalog, two-way tag sync, auto-tagging rules, segments and campaigns."""
