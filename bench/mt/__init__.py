"""Machine translation from scratch for measured suites: corpus, tokenizer, training, decoding, scoring."""
