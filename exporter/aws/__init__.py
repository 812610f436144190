"""The AWS side: boto3 clients, every call paced by its operation's budget, one-line fixes."""
