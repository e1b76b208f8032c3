{
  "targets": [
    {
      "target_name": "malloc_tune",
      "sources": ["src/malloc_tune.c"],
      "cflags": ["-Wall", "-Wextra", "-O2"],
      "conditions": [["OS!='linux'", {"type": "none", "sources!": ["src/malloc_tune.c"]}]]
    }
  ]
}
