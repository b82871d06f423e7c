from django.db import migrations

PLANS = [
    # slug, name, price_cents, vcpus, memory_mb, disk_gb, DigitalOcean size, sort order
    ("basic", "Basic", 900, 1, 1024, 25, "s-1vcpu-1gb", 1),
    ("pro", "Pro", 2900, 2, 4096, 80, "s-2vcpu-4gb", 2),
    ("premium", "Premium", 5900, 4, 8192, 160, "s-4vcpu-8gb", 3),
]


def seed_plans(apps, schema_editor):
    Plan = apps.get_model("billing", "Plan")
    for slug, name, price, vcpus, memory, disk, size, order in PLANS:
        Plan.objects.update_or_create(
            slug=slug,
            defaults={
                "name": name,
                "price_cents": price,
                "currency": "usd",
                "vcpus": vcpus,
                "memory_mb": memory,
                "disk_gb": disk,
                "provider_size_slug": size,
                "is_active": True,
                "sort_order": order,
            },
        )


def unseed_plans(apps, schema_editor):
    # The seeded plans nothing refers to: a plan with payments or servers stays (both
    # PROTECT it), and so does any plan not seeded here. Servers exist in the state only
    # while their app is migrated (`migrate billing 0001` alone keeps them).
    Plan = apps.get_model("billing", "Plan")
    plans = Plan.objects.filter(slug__in=[row[0] for row in PLANS], payments__isnull=True)
    if "servers" in {field.name for field in Plan._meta.get_fields()}:
        plans = plans.filter(servers__isnull=True)
    plans.delete()


class Migration(migrations.Migration):
    dependencies = [("billing", "0001_initial")]
    operations = [migrations.RunPython(seed_plans, unseed_plans)]
