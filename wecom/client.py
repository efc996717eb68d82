from collections import Counter
_CALLS: Counter = Counter()
def call_counts() -> dict:
    return dict(_CALLS)
