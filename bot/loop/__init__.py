"""The story loop: the runner's persisted steps, rounds, the outbox, captions, the run lock, the
render job port and the failpoints the chaos harness arms."""
