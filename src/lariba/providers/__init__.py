"""Cloud providers behind one contract: ``aws`` (EC2, S3, RDS through boto3) and ``local``
(this machine). The cloud service depends on ``lariba.providers.base`` only."""
