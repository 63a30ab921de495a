from django.db import migrations, models


class Migration(migrations.Migration):
    dependencies = [
        ("outbox", "0004_relay_refusal"),
    ]

    operations = [
        migrations.AddField(
            model_name="outboxevent",
            name="traceparent",
            field=models.CharField(blank=True, max_length=55, null=True),
        ),
    ]
