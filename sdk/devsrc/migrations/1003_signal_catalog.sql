-- 1003_signal_catalog.sql: the five endpoint signals and the internal controls
-- each one evidences. An evidence row can only be written for a (signal key,
-- control) pair listed here (foreign key from evidence to signal_control).
--
-- A full sync like 1002: re-applying it leaves exactly these rows.

INSERT INTO public.signal_definition (signal_key, name, description)
VALUES
  ('disk_encryption', 'Disk encryption posture',
   'Share of in-scope volumes (local fixed disks of approved Windows and macOS devices) that are encrypted. PASS >= 95%, WARNING 80% to < 95%, FAIL < 80%.'),
  ('antivirus_posture', 'Antivirus posture',
   'Real-time protection state and signature freshness per device. PASS every device protected and fresh, WARNING all protected with some aging, FAIL any device unprotected or stale.'),
  ('patch_sla', 'Patch SLA',
   'Outstanding critical and important OS / software patches and failed installs. PASS none outstanding and no failure, WARNING 1 to 5 outstanding, FAIL 6 or more or any failed install.'),
  ('backup_activity', 'Backup activity',
   'Backup activity over the last 7 days per device. PASS every device with activity has a success, WARNING under 10% only failed, FAIL 10% or more have no success.'),
  ('device_inventory', 'Device inventory',
   'Approved device count and offline tally. PASS at least one device and under 50% offline, WARNING otherwise.')
ON CONFLICT (signal_key) DO UPDATE
  SET name = EXCLUDED.name,
      description = EXCLUDED.description;

WITH src (signal_key, control_id) AS (
  VALUES
  ('disk_encryption',   'IC-024'),
  ('disk_encryption',   'IC-052'),
  ('antivirus_posture', 'IC-013'),
  ('antivirus_posture', 'IC-051'),
  ('patch_sla',         'IC-038'),
  ('patch_sla',         'IC-053'),
  ('backup_activity',   'IC-060'),
  ('backup_activity',   'IC-061'),
  ('device_inventory',  'IC-031'),
  ('device_inventory',  'IC-032')
), removed AS (
  DELETE FROM public.signal_control c
   WHERE NOT EXISTS (SELECT 1 FROM src
                      WHERE src.signal_key = c.signal_key
                        AND src.control_id = c.control_id)
)
INSERT INTO public.signal_control (signal_key, control_id)
SELECT signal_key, control_id FROM src
ON CONFLICT DO NOTHING;
