"""The data flywheel (DESIGN §9): recorded traces (forge_mcp/traces) become training data.
rows.py turns traces into SFT rows and DPO pairs, saying why the others were left out;
sources.py writes them where the job reads them; jobs.py is the traces_to_dataset job (the
same cleaning, PII and dedup steps as dataset_prepare) and publish.py publishes its datasets
with lineage back to the traces. judging.py labels unrated traces with an LLM judge
(trace_judge). service.py is what the flywheel tools call."""
