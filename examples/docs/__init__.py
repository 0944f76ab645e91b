"""Complete programs shown in docs/; tests/test_docs_examples.py runs each one."""
