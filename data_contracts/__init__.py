"""data_contracts: the tables of the quarterly drop and how to judge a row — schemas, value
parsing, identifier checks, name matching and the Great Expectations suites. Nothing about scoring."""
