"""The python-example Temporal app: workflows and activities the temporal-chaos scenarios break."""
